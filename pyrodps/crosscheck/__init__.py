"""Checks of the samplers against NUTS: plain (p)SGLD on known targets (:mod:`.nuts`) and the joint
BADS kernel on small BADS posteriors (:mod:`.joint`). They import Pyro's NUTS when used."""
