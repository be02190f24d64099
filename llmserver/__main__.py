"""`python -m llmserver [--model FILE] [--n_gpu_layers N] ...`: serve on LLMSERVER_HOST:
LLMSERVER_PORT; flags (as llama_cpp.server takes them) override the environment."""

import sys

from services.serve import serve

from .flags import settings_from
from .main import create_app

if __name__ == "__main__":
    serve("llmserver", settings_from(sys.argv[1:]), create_app, argv=[])
