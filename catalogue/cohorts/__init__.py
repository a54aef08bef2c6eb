"""Cohort-feasibility counts: questions, their canonical form and their plan."""
