"""HTML pages. Each module is one area of the product."""
