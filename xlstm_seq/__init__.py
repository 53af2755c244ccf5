"""xlstm-seq: the xLSTM core (mLSTM, sLSTM, blocks, stack) with a stateful, length-agnostic API."""

from xlstm_seq.config import mLSTMLayerConfig, sLSTMLayerConfig, xLSTMConfig
from xlstm_seq.stack import xLSTMStack
from xlstm_seq.state import mLSTMBlockState, sLSTMBlockState, xLSTMState

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "mLSTMBlockState",
    "mLSTMLayerConfig",
    "sLSTMBlockState",
    "sLSTMLayerConfig",
    "xLSTMConfig",
    "xLSTMStack",
    "xLSTMState",
]
