# style.gp - the look shared by every roteq figure. Loaded by path from each plots/*.gp script
# (after `gnuplot -c SCRIPT DATA OUT ...`; the caller sets ROTEQ_OUT = ARG2 first, because `load`
# hides the ARGn variables), it reads OUT's extension to pick the terminal:
# .svg -> svg, anything else -> pngcairo. Restyle every figure at once by editing this file.
#
# Defines:  roteq_term(w, h)  a `set terminal ...` command string: eval roteq_term(900, 560)
#           roteq_is_svg      1 when OUT ends in .svg
#           line types 1..8   a colour-blind-safe palette (Okabe-Ito), one per group/run
#           palette           viridis, for panels with more than 8 curves (lc palette frac f)
#           roteq_log_ytics   after `set logscale y`: eval roteq_log_ytics labels 1-2-5 steps, so a
#                             log axis spanning less than a decade still has numbers on it

roteq_is_svg = (strlen(ROTEQ_OUT) > 4 && ROTEQ_OUT[strlen(ROTEQ_OUT)-2:] eq 'svg') ? 1 : 0
roteq_font = 'DejaVu Sans'
# noenhanced: layer names such as blocks.0.attn_q are drawn as written, not as subscripts.
roteq_term(w, h) = roteq_is_svg \
    ? sprintf("set terminal svg size %d,%d dynamic noenhanced font '%s,11' background '#ffffff'", w, h, roteq_font) \
    : sprintf("set terminal pngcairo size %d,%d noenhanced font '%s,10' background '#ffffff'", w, h, roteq_font)

set encoding utf8
set datafile missing NaN
set border 3 lw 1 lc rgb '#444444'
set tics nomirror out scale 0.6 textcolor rgb '#333333'
set grid xtics ytics lw 0.5 lc rgb '#dddddd'
set key top right noopaque samplen 2.5 spacing 1.1 textcolor rgb '#222222'
set title textcolor rgb '#111111'
set mxtics default
set format y '%g'

set linetype 1 lc rgb '#0072B2' lw 2 pt 7  ps 0.9
set linetype 2 lc rgb '#D55E00' lw 2 pt 5  ps 0.9
set linetype 3 lc rgb '#009E73' lw 2 pt 9  ps 1.0
set linetype 4 lc rgb '#CC79A7' lw 2 pt 13 ps 1.0
set linetype 5 lc rgb '#E69F00' lw 2 pt 11 ps 1.0
set linetype 6 lc rgb '#56B4E9' lw 2 pt 15 ps 1.0
set linetype 7 lc rgb '#000000' lw 2 pt 3  ps 1.0
set linetype 8 lc rgb '#999999' lw 2 pt 1  ps 1.0
set linetype cycle 8
# Sequential palette (viridis) for panels with more than 8 curves, coloured by depth; scripts use
# frac 0..0.9, leaving out the yellow end that is hard to see on white.
set palette defined (0 '#440154', 0.25 '#3B528B', 0.5 '#21918C', 0.75 '#5EC962', 1 '#FDE725')

roteq_log_ytics = "set format y '%g'; do for [e=-15:15] { set ytics add (sprintf('%g', 2*10.0**e) 2*10.0**e, sprintf('%g', 5*10.0**e) 5*10.0**e) }"
