"""social-tone task code: everything that runs inside task containers (`python -m tasks ...`)."""
