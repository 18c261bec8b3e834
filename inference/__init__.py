"""Using a trained run: load it (weights, class names, the eval preprocessing), predict on image files, export a
SavedModel."""
