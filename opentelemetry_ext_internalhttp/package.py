_instruments = ("internalhttp >= 2.0, < 3.0",)
