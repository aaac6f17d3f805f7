"""The project's tests. A package, so that each folder's conftest and helpers have unique names."""
