mod wycheproof;
