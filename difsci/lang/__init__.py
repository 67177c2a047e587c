"""The difsci compiler: source -> typed scalar IR -> transformations -> Python source."""
