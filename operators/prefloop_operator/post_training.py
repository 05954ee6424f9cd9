"""The post-training Job: ``spec.postTraining`` run as a Kubernetes Job after the run succeeds.

An ActiveRun with ``spec.postTraining`` (the settings of ``prefloop train``, docs/training.md)
gets, once its phase is Succeeded, one more child: the Job ``<run>-post-training`` running
``prefloop train manifest /etc/prefloop/activerun.yaml`` in the image of the run. It mounts the
run's volume (the dataset the driver wrote; the model is saved there, under
``postTraining.outputDir``, by default ``{runDir}/model-{kind}``) and the manifest ConfigMap,
and its pods take the trainer role's settings (``roles.trainer``: image, resources, GPUs,
node selector, tolerations), the role that already trains models for the run.

The Job is created once: never for a failed or still running run, never again after it exists
(a finished or failed Job stays for ``kubectl logs``; delete it to train again). The operator
reports it with an Event (``PostTrainingStarted``) and deletes it with the run's other children.
"""

from __future__ import annotations

from typing import Any

from prefloop.spec import ActiveRun
from prefloop_operator import children as ch

COMPONENT = "post-training"
BACKOFF_LIMIT = 2
"""Pod retries of the training Job (a training that fails twice needs a person)."""


def job_name(run: str) -> str:
    """``<run>-post-training``."""
    return ch.child_name(run, COMPONENT)


def post_training_job(run: ActiveRun, owner: ch.Owner, defaults: ch.Defaults) -> dict[str, Any]:
    """The Job that trains ``spec.postTraining`` on the run's dataset (pure: no cluster I/O).

    Why a Job: training is a batch step with its own resources (often GPUs) that must finish
    once; a Job retries a lost pod and keeps the logs of the attempt.
    """
    pod = run.spec.roles.trainer
    volumes, mounts = ch._volumes(run, owner, driver=False)
    args = ["train", "manifest", ch.MANIFEST_PATH]
    container = ch._container(COMPONENT, pod, run, defaults, args, mounts)
    spec = ch._pod_spec(pod, [container], volumes)
    spec["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ch._metadata(owner, COMPONENT),
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "template": {"metadata": {"labels": ch.labels(owner.name, COMPONENT)}, "spec": spec},
        },
    }


def wants_post_training(run: ActiveRun, phase: str | None) -> bool:
    """True when the run asks for post-training and has succeeded."""
    return run.spec.post_training is not None and phase == "Succeeded"


def ensure_post_training(
    kube: Any,
    run: ActiveRun,
    owner: ch.Owner,
    defaults: ch.Defaults,
    phase: str | None,
    children: dict[tuple[str, str], Any],
) -> dict[str, Any] | None:
    """Create the post-training Job once the run succeeded; returns it when it was created now.

    Why once: the Job's own status is the record of the training; re-creating it would train
    again over the saved model.
    """
    if not wants_post_training(run, phase) or ("Job", job_name(owner.name)) in children:
        return None
    made: dict[str, Any] | None = kube.create(post_training_job(run, owner, defaults))
    return made
