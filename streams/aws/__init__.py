"""boto3 and AWS-file edges: S3 input, organisation accounts, network inventory, the IP-ranges
file. Clients are built here and handed in. May import core, config and errors; never cli."""
