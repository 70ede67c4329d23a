"""Point-in-time feature definitions (Ibis expressions), feature catalog and text lexicon."""
