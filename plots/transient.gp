# transient.gp - figure 6: the first steps of each run, angular update (top) and weight norm
# (bottom) divided by the run's own equilibrium value, so over- or under-rotation shows as
# distance from the line at 1. Solid: measured; dashed: predicted transient. Logarithmic step
# axis.
#
#   gnuplot -c transient.gp DATA OUT TITLE LOGY NGROUPS
#     DATA     data file written by `roteq plot transient`: NGROUPS blocks (gnuplot index), each
#              starting with a header line; columns 1 step, 2 angle_rms/eq_angle (header =
#              legend), 3 pred_angle/eq_angle, 4 norm_mean/eq_norm, 5 pred_norm/eq_norm,
#              6 angle_rms, 7 norm_mean (absolute values, for restyling)
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title    LOGY 1: logarithmic y axes    NGROUPS number of blocks

_d = ''; _s = ARG0; while (strstrt(_s, '/') > 0) { _k = strstrt(_s, '/'); _d = _d . _s[1:_k]; _s = _s[_k+1:] }
ROTEQ_OUT = ARG2; load _d . 'style.gp'

DATA = ARG1; N = int(ARG5)
eval roteq_term(900, 720)
set output ARG2
if (int(ARG4)) { set logscale y; eval roteq_log_ytics }
# The first steps matter most: a logarithmic step axis shows the first ten steps and the slow
# return to equilibrium over thousands of steps in one picture.
set logscale x
set format x '%g'
set multiplot layout 2, 1 title ARG3
set key outside right top vertical
set lmargin 12; set rmargin 30

set ylabel "angular update / equilibrium"
unset xlabel
plot 1 with lines dt (2,3) lw 1 lc rgb '#333333' title 'equilibrium', \
     for [i=0:N-1] DATA index i using 1:2 with lines lw 2 lc i+1 title columnheader(2), \
     for [i=0:N-1] DATA index i using 1:3 with lines dt (5,4) lw 1 lc rgb '#222222' notitle, \
     NaN with lines dt (5,4) lw 1 lc rgb '#222222' title 'predicted transient'

set ylabel "‖w‖ / equilibrium norm"
set xlabel 'step'
plot 1 with lines dt (2,3) lw 1 lc rgb '#333333' notitle, \
     for [i=0:N-1] DATA index i using 1:4 with lines lw 2 lc i+1 notitle, \
     for [i=0:N-1] DATA index i using 1:5 with lines dt (5,4) lw 1 lc rgb '#222222' notitle
unset multiplot
unset output
