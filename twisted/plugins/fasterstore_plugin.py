"""The ``twistd fasterstore`` plugin: one lazy ServiceMaker, nothing imported early."""

from twisted.application.service import ServiceMaker

fasterstore = ServiceMaker(
    "FasterStore",
    "fasterstore.tap",
    "An S3-compatible object storage server.",
    "fasterstore",
)
