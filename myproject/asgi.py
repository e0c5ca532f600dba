"""ASGI entry point, for an ASGI server such as uvicorn. This template runs WSGI (see
myproject/wsgi.py); this file is here because Django's project layout has it.

https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

application = get_asgi_application()
