pytest_plugins = ["xpnet.testing"]  # the device/xp fixtures and --xpnet-devices
