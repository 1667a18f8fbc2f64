"""Label-free adaptation: distil a clear-weather teacher detector into TogetherNet on fogged video."""
