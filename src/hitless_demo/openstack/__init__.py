"""The OpenStack example: real releases from PyPI in images, their spec and configs, their users."""
