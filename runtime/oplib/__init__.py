"""Building blocks families share on the host side: argument checks, conv geometry, requantization
parameters, the im2col matrix formats. Not core (the core never imports it), not a family."""
