"""All tables; importing this package registers every model on SQLModel.metadata (Alembic reads it)."""

from db.models.base import NAMING_CONVENTION
from db.models.github import Issue, IssueEvent, IssueSample, IssueSampleMember, Repository
from db.models.ingest import IngestRun, RunStatus
from db.models.survey import QuestionKind, Survey, SurveyAnswer, SurveyQuestion, SurveyResponse

__all__ = [
    "NAMING_CONVENTION",
    "IngestRun",
    "Issue",
    "IssueEvent",
    "IssueSample",
    "IssueSampleMember",
    "QuestionKind",
    "Repository",
    "RunStatus",
    "Survey",
    "SurveyAnswer",
    "SurveyQuestion",
    "SurveyResponse",
]
