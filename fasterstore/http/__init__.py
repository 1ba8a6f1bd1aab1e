"""HTTP plumbing below the S3 layer: streaming requests, connection limits and deadlines."""
