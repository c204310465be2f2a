# series.gp - figures 1 and 2: a series statistic vs optimizer step, one colour per group
# (optimizer or layer): measured line, 5-95% band across neurons, predicted transient (dashed)
# and equilibrium (dotted).
#
#   gnuplot -c series.gp DATA OUT TITLE YLABEL LOGY NGROUPS EQLABEL [PANELS]
#     DATA     data file written by `roteq plot norm|angle`: NGROUPS blocks (gnuplot index),
#              each starting with a header line; columns
#              1 step, 2 measured (header = legend), 3 q05, 4 q95, 5 predicted, 6 equilibrium
#     OUT      figure file; .svg gives SVG, anything else PNG
#     TITLE    figure title          YLABEL  y axis label
#     LOGY     1: logarithmic y axis NGROUPS number of blocks
#     EQLABEL  legend of column 6: 'equilibrium', or 'prediction at the last step' when the
#              input had no eq_* column
#     PANELS   words "FIRST TITLE FIRST TITLE ...": panel k holds blocks FIRST_k .. FIRST_k+1 - 1
#              under TITLE_k (quoted); empty: one panel per block
#   Up to 4 groups share one panel. More get small multiples, each panel with its own y range:
#   a panel holding one group draws it as above; a panel holding several (the layers of one type,
#   e.g. h.*.attn.q.weight) draws each in its own colour (Okabe-Ito up to 8, then a sequential
#   palette in block order, i.e. by depth), measured solid and predicted dashed, without bands.

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
    PANELS = (ARGC >= 8) ? ARG8 : ''
    NP = (strlen(PANELS) > 0) ? words(PANELS) / 2 : N
    cols = ceil(sqrt(NP)); rows = ceil(NP * 1.0 / cols)
    eval roteq_term(540 * cols, 300 * rows + 40)
    set output ARG2
    set multiplot layout rows, cols title ARG3
    set key top right font ',8' samplen 1.5 spacing 0.9
    unset colorbox
    unset xlabel
    do for [p=0:NP-1] {
        a = (strlen(PANELS) > 0) ? int(word(PANELS, 2 * p + 1)) : p
        b = (strlen(PANELS) > 0 && p < NP - 1) ? int(word(PANELS, 2 * p + 3)) : ((strlen(PANELS) > 0) ? N : p + 1)
        if (strlen(PANELS) > 0) { set title word(PANELS, 2 * p + 2) font ',10' } else { unset title }
        if (b - a == 1) {
            set key inside top right font ',8'
            plot DATA index a using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 1 notitle, \
                 DATA index a using 1:6 with lines dt (2,3) lw 1 lc 2 notitle, \
                 DATA index a using 1:2 with lines lw 1.5 lc 1 title columnheader(2), \
                 DATA index a using 1:5 with lines dt (5,4) lw 1 lc rgb '#222222' notitle
        } else {
            set key outside right top vertical font ',7' samplen 1 spacing 0.85
            if (b - a <= 8) {
                plot for [i=a:b-1] DATA index i using 1:5 with lines dt (5,4) lw 1 lc (i-a+1) notitle, \
                     for [i=a:b-1] DATA index i using 1:2 with lines lw 1.5 lc (i-a+1) title columnheader(2)
            } else {
                plot for [i=a:b-1] DATA index i using 1:5 with lines dt (5,4) lw 1 lc palette frac (0.9*(i-a)/(b-a-1.0)) notitle, \
                     for [i=a:b-1] DATA index i using 1:2 with lines lw 1.5 lc palette frac (0.9*(i-a)/(b-a-1.0)) title columnheader(2)
            }
        }
    }
    unset multiplot
}
unset output
