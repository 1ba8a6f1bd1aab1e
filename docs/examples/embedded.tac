"""
An existing Twisted web application that mounts FasterStore's S3 API under
C{/storage/s3/} next to its own pages.  Run it with::

    twistd -ny docs/examples/embedded.tac

Environment: C{APP_PORT} (default 8080), C{APP_DATA} (default ./app-data),
C{APP_ACCESS_KEY} / C{APP_SECRET_KEY} (default: generated and stored in the
data directory).  tests/integration/test_embedding.py runs this file.
"""

import os

from twisted.application import service, strports
from twisted.internet import reactor
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource
from twisted.web.static import Data

from fasterstore.credentials import loadOrCreateCredentials
from fasterstore.service import FasterStore

dataDir = FilePath(os.environ.get("APP_DATA", "app-data"))
credentials = loadOrCreateCredentials(
    dataDir, os.environ.get("APP_ACCESS_KEY"), os.environ.get("APP_SECRET_KEY"), Logger()
)
store = FasterStore.create(reactor, dataDir, credentials)

# The application's own resource tree: FasterStore is one branch of it.
root = Resource()
root.putChild(b"", Data(b"<h1>My application</h1>", "text/html"))
storage = Resource()
root.putChild(b"storage", storage)
storage.putChild(b"s3", store.resource)

application = service.Application("my-application")
store.service.setServiceParent(application)
# store.site() uses FasterStore's request factory, so uploads stream.
site = store.site(root)
port = os.environ.get("APP_PORT", "8080")
strports.service(f"tcp:{port}:interface=127.0.0.1", site).setServiceParent(application)
