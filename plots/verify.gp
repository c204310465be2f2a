# verify.gp - figure 5: every verified setting as one point, predicted (x) vs measured (y), for
# the equilibrium norm (left) and the angular update (right), log-log around y = x. One point
# style and colour per optimizer; APPROX rows (approximate formula) are ringed, FAIL rows are
# crossed. Error bars: the measurement's 95% confidence interval when the rows carry it. Below
# each panel, the relative error (measured - predicted) / predicted in percent.
#
#   gnuplot -c verify.gp DATA OUT TITLE NOPT NAMES
#     DATA     data file written by `roteq plot verify`: NOPT blocks (gnuplot index), each
#              starting with a header line; columns 1 pred_norm, 2 norm (header = legend:
#              optimizer), 3 norm_ci_lo, 4 norm_ci_hi, 5 pred_angle, 6 angle, 7 angle_ci_lo,
#              8 angle_ci_hi, 9 approx (0/1), 10 fail (0/1), 11 norm error (%),
#              12 angle error (%)
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title    NOPT number of blocks
#     NAMES    the optimizers' legend names, space-separated, in block order

_d = ''; _s = ARG0; while (strstrt(_s, '/') > 0) { _k = strstrt(_s, '/'); _d = _d . _s[1:_k]; _s = _s[_k+1:] }
ROTEQ_OUT = ARG2; load _d . 'style.gp'

DATA = ARG1; N = int(ARG4); NAMES = ARG5
eval roteq_term(1100, 920)
set output ARG2
# Point types cycle with period 11 and colours with period 8, so up to 88 optimizers get distinct
# (colour, point) pairs; 6 (open circle) and 2 (cross) are kept for APPROX and FAIL.
PTS = '7 5 9 11 13 15 3 1 4 8 12'
opt_pt(i) = int(word(PTS, i % 11 + 1))
ring(a, v) = (a > 0.5) ? v : NaN
set multiplot title ARG3
set key top left font ',9' spacing 1.0

# Top row: log-log around y = x.
set logscale xy
set format xy '%.0e'
set size 0.5, 0.6
set origin 0, 0.38
set xlabel 'predicted equilibrium norm'
set ylabel 'measured norm'
plot x with lines dt (4,3) lw 1 lc rgb '#555555' title 'y = x', \
     for [i=0:N-1] keyentry with points lc i+1 pt opt_pt(i) ps 1.1 title word(NAMES, i + 1), \
     for [i=0:N-1] DATA index i using 1:2:3:4 with yerrorbars lw 1 lc i+1 pt opt_pt(i) ps 1.1 notitle, \
     for [i=0:N-1] DATA index i using 1:(ring($9, $2)) with points pt 6 ps 2.4 lw 1.2 lc rgb '#333333' notitle, \
     for [i=0:N-1] DATA index i using 1:(ring($10, $2)) with points pt 2 ps 2.4 lw 2 lc rgb '#cc0000' notitle, \
     NaN with points pt 6 ps 2.0 lc rgb '#333333' title 'APPROX formula', \
     NaN with points pt 2 ps 2.0 lw 2 lc rgb '#cc0000' title 'FAIL'

set origin 0.5, 0.38
set xlabel 'predicted angular update (rad)'
set ylabel 'measured angular update (rad)'
plot x with lines dt (4,3) lw 1 lc rgb '#555555' notitle, \
     for [i=0:N-1] DATA index i using 5:6:7:8 with yerrorbars lw 1 lc i+1 pt opt_pt(i) ps 1.1 notitle, \
     for [i=0:N-1] DATA index i using 5:(ring($9, $6)) with points pt 6 ps 2.4 lw 1.2 lc rgb '#333333' notitle, \
     for [i=0:N-1] DATA index i using 5:(ring($10, $6)) with points pt 2 ps 2.4 lw 2 lc rgb '#cc0000' notitle

# Bottom row: relative error in percent, which the log-log panels cannot resolve, with the
# measurement's confidence interval in the same units.
unset logscale y
set format y '%g'
set size 0.5, 0.38
set ylabel 'error (%)'
set xzeroaxis lt 1 lc rgb '#555555' dt (4,3)
unset key
set origin 0, 0
set xlabel 'predicted equilibrium norm'
plot for [i=0:N-1] DATA index i using 1:11:(100 * ($3 - $1) / $1):(100 * ($4 - $1) / $1) with yerrorbars lw 1 lc i+1 pt opt_pt(i) ps 1.1, \
     for [i=0:N-1] DATA index i using 1:(ring($9, $11)) with points pt 6 ps 2.4 lw 1.2 lc rgb '#333333', \
     for [i=0:N-1] DATA index i using 1:(ring($10, $11)) with points pt 2 ps 2.4 lw 2 lc rgb '#cc0000'
set origin 0.5, 0
set xlabel 'predicted angular update (rad)'
plot for [i=0:N-1] DATA index i using 5:12:(100 * ($7 - $5) / $5):(100 * ($8 - $5) / $5) with yerrorbars lw 1 lc i+1 pt opt_pt(i) ps 1.1, \
     for [i=0:N-1] DATA index i using 5:(ring($9, $12)) with points pt 6 ps 2.4 lw 1.2 lc rgb '#333333', \
     for [i=0:N-1] DATA index i using 5:(ring($10, $12)) with points pt 2 ps 2.4 lw 2 lc rgb '#cc0000'
unset multiplot
unset output
