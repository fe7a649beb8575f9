"""boto3 adapters: S3 input, organisation accounts, network inventory. Clients are built here,
at the edge, and handed to the functions that use them."""
