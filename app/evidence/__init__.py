"""Evidence: what groups produce (notes, photos, sound, posters, documents, links), and the
themes organisers code it into."""
