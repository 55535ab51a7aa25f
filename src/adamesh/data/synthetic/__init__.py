"""The synthetic talking-face corpus: sentences (`text`), espeak-ng speech with phone timing
(`espeak`), ground-truth animation from the phones by rule (`animation`), and the generator that
writes corpus folders (`corpus`)."""
