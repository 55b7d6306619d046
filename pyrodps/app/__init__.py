"""The entry points: ``pyrodps`` on the command line (:mod:`.cli`), one run written to a folder
(:mod:`.runner`), several methods and seeds side by side (:mod:`.compare`) and every method behind
one call (:mod:`.methods`)."""
