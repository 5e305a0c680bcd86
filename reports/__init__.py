"""reports: pandas analysis of run folders and rating databases, written as an HTML report."""
