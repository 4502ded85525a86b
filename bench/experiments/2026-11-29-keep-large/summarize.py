# Per variant: every figure that rises by more than 0.002 over main (before.txt) and every one that falls
# by more than 0.0005, per trace and column (host, lag 0, lag 2; cold / peak over cold and three warm).
import sys, os
def read(p):
    rows = {}
    for line in open(p).read().splitlines()[1:]:
        f = line.split()
        rows[f[0]] = [tuple(map(float, c.split('/'))) for c in f[1:4]]
    return rows
base = read(sys.argv[1])
cols = ['host', 'lag0', 'lag2']
for p in sys.argv[2:]:
    x = read(p)
    up, down = [], []
    for t, figs in x.items():
        for c, (new, old) in enumerate(zip(figs, base[t])):
            for k, what in enumerate(['cold', 'peak']):
                if new[k] > old[k] + 0.002: up.append(f'{t} {cols[c]} {what} {old[k]:.4f}->{new[k]:.4f}')
                elif new[k] < old[k] - 0.0005: down.append(f'{t} {cols[c]} {what} {old[k]:.4f}->{new[k]:.4f}')
    print(f'== {os.path.basename(p)[:-4]}: {len(up)} rise, {len(down)} fall')
    for s in down: print('  fall ', s)
    for s in up: print('  rise ', s)
