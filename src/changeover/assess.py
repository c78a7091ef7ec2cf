"""The assessment, as features import it: ``from changeover.assess import assess``.

The service lives in ``changeover.assessment`` (records + spec -> typed
decision); this module re-exports its public names so evaluate, labelling and
rollout keep their import path.
"""

from changeover.assessment import *  # noqa: F403
from changeover.assessment import __all__  # noqa: F401
