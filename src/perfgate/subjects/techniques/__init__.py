"""One module per technique; each defines ``Technique`` subclasses registered in ``perfgate.subjects.technique``."""
