import json,sys
base={'bert_infer_varlen':1.1722,'cnn_train':1.1067,'ddp_gpt2_rank0':1.1212,'effnet_train_multiscale':1.0049,'gpt2_generate_varlen':1.0501,'gpt2_varlen_e2e':1.1063,'gpt_train_varlen':1.0100,'llama_train_ckpt_varlen':1.1794,'mlp_two_streams':1.1315,'resnet50_train':1.0155,'seg_train_multiscale':1.0308,'t5_train_varlen':1.0326,'vit_train_amp':1.0378}
def load(f):
    d={}
    for l in open(f):
        l=l.strip()
        if not l.startswith('{'): continue
        j=json.loads(l); d[(j['trace'],j['allocator'])]=j
    return d
main=load(sys.argv[1]); new=load(sys.argv[2]) if len(sys.argv)>2 else main
allocs=sorted({a for _,a in new})
for a in allocs:
    print(f"\n### {a}\n")
    print("| trace | 039b03f cold | main cold | new cold | main settled | new settled | above 039b03f? | settled worse >0.002? |")
    print("|---|---|---|---|---|---|---|---|")
    above=0; worse=0
    for t in sorted(base):
        m=main.get((t,a)) or main.get((t,'stash')); n=new[(t,a)]
        ab=n['reserved_over_live']>base[t]; above+=ab
        w=n['settled_reserved_over_live']>m['settled_reserved_over_live']+0.002; worse+=w
        print(f"| {t} | {base[t]:.4f} | {m['reserved_over_live']:.4f} | {n['reserved_over_live']:.4f} | {m['settled_reserved_over_live']:.4f} | {n['settled_reserved_over_live']:.4f} | {'YES' if ab else ''} | {'WORSE' if w else ''} |")
    print(f"\n{a}: {above} traces above 039b03f cold; {worse} settled worse than main by >0.002")
