"""All tables; importing this package registers every model on SQLModel.metadata (Alembic reads it)."""

from db.models.base import NAMING_CONVENTION
from db.models.experiments import (
    Campaign,
    ConversionRun,
    ModelOperator,
    ModelUnderTest,
    RunOutcome,
    RunOutput,
    Stage,
)
from db.models.failures import (
    FailureSignature,
    RunSignature,
)
from db.models.github import (
    Issue,
    IssueEvent,
    IssueSample,
    IssueSampleMember,
    Repository,
)
from db.models.github_mining import (
    GithubCursor,
    IssueFixLink,
    IssueFixRule,
    SchedulerLock,
)
from db.models.ingest import (
    IngestRun,
    RunStatus,
)
from db.models.labeling import (
    AdjudicationHistory,
    Codebook,
    CodebookCode,
    CodebookDimension,
    CodebookVersion,
    Coder,
    Coding,
    CodingValue,
    FinalLabel,
    LabelItem,
    LabelRound,
    LsProject,
    LsTask,
)
from db.models.survey import (
    KindSource,
    QuestionKind,
    Survey,
    SurveyAnswer,
    SurveyDefinition,
    SurveyDerivedValue,
    SurveyQuestion,
    SurveyResponse,
)

__all__ = [
    "NAMING_CONVENTION",
    "AdjudicationHistory",
    "Campaign",
    "Codebook",
    "CodebookCode",
    "CodebookDimension",
    "CodebookVersion",
    "Coder",
    "Coding",
    "CodingValue",
    "ConversionRun",
    "FailureSignature",
    "FinalLabel",
    "GithubCursor",
    "IngestRun",
    "Issue",
    "IssueEvent",
    "IssueFixLink",
    "IssueFixRule",
    "IssueSample",
    "IssueSampleMember",
    "KindSource",
    "LabelItem",
    "LabelRound",
    "LsProject",
    "LsTask",
    "ModelOperator",
    "ModelUnderTest",
    "QuestionKind",
    "Repository",
    "RunOutcome",
    "RunOutput",
    "RunSignature",
    "RunStatus",
    "SchedulerLock",
    "Stage",
    "Survey",
    "SurveyAnswer",
    "SurveyDefinition",
    "SurveyDerivedValue",
    "SurveyQuestion",
    "SurveyResponse",
]
