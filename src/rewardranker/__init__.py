"""rewardranker: generate N programs, execute them, and let a self-improving reward model pick one."""

__version__ = "0.1.0"
