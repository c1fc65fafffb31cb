"""What the tests share: the in-process harnesses of the three services, the one
polling helper, the scripted fakes and store doubles, and the process launcher.
Imported as `support.<module>` (pyproject puts tests/ on the path)."""
