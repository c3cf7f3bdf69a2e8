//! Scenario format v1. (Filled in by the scenario work: types, units, loading, validation, schema.)
