"""hivelog tools."""
