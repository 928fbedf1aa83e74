"""All tables; importing this package registers every model on SQLModel.metadata (Alembic reads it)."""

from db.models.base import NAMING_CONVENTION
from db.models.experiments import Campaign, ConversionRun, ModelUnderTest, RunOutcome, RunOutput, Stage
from db.models.github import Issue, IssueEvent, IssueSample, IssueSampleMember, Repository
from db.models.ingest import IngestRun, RunStatus

__all__ = [
    "NAMING_CONVENTION",
    "Campaign",
    "ConversionRun",
    "IngestRun",
    "Issue",
    "IssueEvent",
    "IssueSample",
    "IssueSampleMember",
    "ModelUnderTest",
    "Repository",
    "RunOutcome",
    "RunOutput",
    "RunStatus",
    "Stage",
]
