"""The annotation web app for human judgments: it asks annotators for exactly the
labels that move the decision, blind and keyboard-first, and stores them in the
``labels`` table where the assessment reads them.

``LabelingService`` holds the logic (queue, leases, submissions, progress);
``create_app`` serves it with Starlette; ``import_labels`` / ``write_labels``
move labels in and out as CSV, JSONL or a Label Studio export.
"""

from changeover.labeling.app import create_app
from changeover.labeling.config import LabelingConfig, labeling_config
from changeover.labeling.export import write_labels
from changeover.labeling.importing import import_labels
from changeover.labeling.service import LabelingService

__all__ = ["LabelingConfig", "LabelingService", "create_app", "import_labels", "labeling_config", "write_labels"]
