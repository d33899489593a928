"""Domain actions and queries; routes call these, never the other way round."""
