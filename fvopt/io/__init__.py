"""Files in and out: images, atomic writes, the canvas grammar, safe names, photos to start from."""
