"""hivelog api."""
