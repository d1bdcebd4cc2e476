"""Care pathways: each function adds one condition's encounters and resources to a child."""
