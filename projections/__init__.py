"""hivelog projections."""
