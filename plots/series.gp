# series.gp - figures 1 and 2: a series statistic vs optimizer step, one colour per group
# (optimizer or layer): measured line, 5-95% band across neurons, predicted transient (dashed)
# and equilibrium (dotted).
#
#   gnuplot -c series.gp DATA OUT TITLE YLABEL LOGY NGROUPS EQLABEL
#     DATA     data file written by `roteq plot norm|angle`: NGROUPS blocks (gnuplot index),
#              each starting with a header line; columns
#              1 step, 2 measured (header = legend), 3 q05, 4 q95, 5 predicted, 6 equilibrium
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title          YLABEL  y axis label
#     LOGY     1: logarithmic y axis NGROUPS number of blocks
#     EQLABEL  legend of column 6: 'equilibrium', or 'prediction at the last step' when the
#              input had no eq_* column
#   Up to 4 groups share one panel; more get one panel each, each with its own y range.

_d = ''; _s = ARG0; while (strstrt(_s, '/') > 0) { _k = strstrt(_s, '/'); _d = _d . _s[1:_k]; _s = _s[_k+1:] }
ROTEQ_OUT = ARG2; load _d . 'style.gp'

DATA = ARG1; N = int(ARG6)
if (int(ARG5)) { set logscale y; eval roteq_log_ytics }
set xlabel 'step'
set ylabel ARG4

if (N <= 4) {
    eval roteq_term(900, 560)
    set output ARG2
    set title ARG3
    set key outside right top vertical
    plot for [i=0:N-1] DATA index i using 1:3:4 with filledcurves fs transparent solid 0.15 noborder lc i+1 notitle, \
         for [i=0:N-1] DATA index i using 1:6 with lines dt (2,3) lw 1.2 lc i+1 notitle, \
         for [i=0:N-1] DATA index i using 1:2 with lines lw 2 lc i+1 title columnheader(2), \
         for [i=0:N-1] DATA index i using 1:5 with lines dt (5,4) lw 1 lc rgb '#222222' notitle, \
         NaN with filledcurves fs transparent solid 0.15 noborder lc rgb '#777777' title '5–95% of neurons', \
         NaN with lines dt (5,4) lw 1 lc rgb '#222222' title 'predicted transient', \
         NaN with lines dt (2,3) lw 1.2 lc rgb '#333333' title ARG7
} else {
    cols = ceil(sqrt(N)); rows = ceil(N * 1.0 / cols)
    eval roteq_term(360 * cols, 260 * rows + 40)
    set output ARG2
    set multiplot layout rows, cols title ARG3
    set key top right font ',8'
    unset xlabel
    do for [i=0:N-1] {
        plot DATA index i using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 1 notitle, \
             DATA index i using 1:6 with lines dt (2,3) lw 1 lc 2 notitle, \
             DATA index i using 1:2 with lines lw 1.5 lc 1 title columnheader(2), \
             DATA index i using 1:5 with lines dt (5,4) lw 1 lc rgb '#222222' notitle
    }
    unset multiplot
}
unset output
