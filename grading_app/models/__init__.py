"""grading_app models, one module per aggregate."""

from grading_app.models.alignment import AlignmentProposal
from grading_app.models.endpoints import Endpoint, Target
from grading_app.models.graders import Grader
from grading_app.models.judging import HumanLabel, JudgeCacheEntry
from grading_app.models.rubrics import Rubric, RubricVersion, RubricVersionEvent
from grading_app.models.runs import CaseResult, Grade, Run, RunChunk, SubmittedOutput

__all__ = [
    "AlignmentProposal",
    "CaseResult",
    "Endpoint",
    "Grade",
    "Grader",
    "HumanLabel",
    "JudgeCacheEntry",
    "Rubric",
    "RubricVersion",
    "RubricVersionEvent",
    "Run",
    "RunChunk",
    "SubmittedOutput",
    "Target",
]
