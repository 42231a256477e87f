"""Parser: YAML node files -> validated node specs -> manifest."""
