"""Persistence for Lacre: sqlmodel tables, repositories, the unit of work and migrations."""
