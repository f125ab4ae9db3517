"""Programmes: contracts that work together (a double-sided PbR's citizen and company
sides), their intake of referrals into places, and their verdict. Pure."""
