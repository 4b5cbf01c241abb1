#!/usr/bin/env python3
"""Cases for tools/filter-diff (JSON lines on standard output): random filters and flows, hand-made
filter shapes, and the filters `aclc compile` writes for the repository's examples and captures.

    gen.py random SEED COUNT
    gen.py shapes
    gen.py compiled SEED FLOWS ACLC_BINARY [DOCUMENTS_DIR]

`compiled` also writes each `aclc compile` document to DOCUMENTS_DIR, if given, for the
oracle's wire check (`filter-diff -wire DIR`).
"""
import glob, ipaddress, json, os, random, subprocess, sys, tempfile

R = random.Random(0)
PERM = False
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

def emit(case):
    print(json.dumps(case))

# --- random filters and flows over small overlapping address pools ---------------------------
V4 = ["100.64.0.1","100.64.0.2","100.64.0.3","100.64.0.4","100.64.1.1","100.64.1.2","10.0.0.0","10.0.0.1","10.0.0.5","10.0.0.255","10.0.1.1",
      "0.0.0.0","255.255.255.255","169.254.169.254","169.254.1.1","224.0.0.1","239.1.2.3","192.168.1.1","100.100.100.100","127.0.0.1","100.64.0.0"]
V6 = ["fd7a:115c:a1e0::1","fd7a:115c:a1e0::2","fd7a:115c:a1e0::3","fd7a:115c:a1e0::101","fd7a:115c:a1e0::102","2001:db8::1","2001:db8::ff","2001:db8:0:1::1",
      "fe80::1","ff02::1","::1","::","::ffff:100.64.0.1","::ffff:100.64.1.1","::ffff:169.254.1.1","::ffff:169.254.169.254","::ffff:224.0.0.1","::ffff:10.0.0.1",
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff","fd7a:115c:a1e0::","fec0::1"]
WEIRD = ["fe80::1%eth0","fd7a:115c:a1e0::1%1","100.64.0.1 "," 100.64.0.1","100.064.0.1","10.0.0.0/024","10.0.0.0/+24","FD7A:115C:A1E0::1","::FFFF:100.64.0.1",
         "fe80::1%eth0/64","fe80::%eth0-fe80::2","100.64.0.1-100.64.0.1","100.64.0.1--100.64.0.2","100.64.0.5-100.64.0.1","100.64.0.1-fd7a:115c:a1e0::1",
         "", "1.2.3.4/33", "1.2.3.4/-1","10.0.0.1/24","fd7a:115c:a1e0::100.64.0.1","Cap:a","CAP:a","cap:","cap:a:b","cap: a","*/0","**","* ",
         "::ffff:100.64.0.0/120","::ffff:0:0/96","100.64.0.1/32","0.0.0.0/0","::/0","0.0.0.0-255.255.255.255","::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
         "::ffff:100.64.0.1-::ffff:100.64.0.9","1.2.3","1.2.3.4.5","100.64.0.1/","/24","::ffff:100.64.0.1/128","fd7a:115c:a1e0:0:0:0:0:1",
         "0x64.64.0.1","100.64.0.1\u0000","１00.64.0.1","10.0.0.0/8-10.0.0.1","100.64.0.1-100.64.0.2-100.64.0.3", "fd7a:115c:a1e0::1/128/1",
         "10.0.0.0/33", "10.0.0.128/25", "fd7a:115c:a1e0::/48", "fd7a:115c:a1e0::1/129"]
CAPS = ["a","b","c","",":x","A"]
C4 = ["100.64.0.1","100.64.0.2","100.64.0.3","100.64.1.1","10.0.0.1","10.0.0.5"]
C6 = ["fd7a:115c:a1e0::1","fd7a:115c:a1e0::2","fd7a:115c:a1e0::101","2001:db8::1","::ffff:100.64.0.1"]
def pick_ip(fam=None):
    if fam is None: fam = R.choice([4,6])
    if R.random() < 0.7: return R.choice(C4 if fam==4 else C6)
    return R.choice(V4 if fam==4 else V6)
def prefix_of(ip):
    a = ipaddress.ip_address(ip)
    bl = a.max_prefixlen
    l = R.choice([0,1,8,16,24,25,28,31,32] if bl==32 else [0,1,16,32,48,64,96,104,112,120,126,127,128])
    if R.random() < 0.85:
        n = ipaddress.ip_network(f"{a}/{l}", strict=False)
        return f"{n.network_address}/{l}"
    return f"{a}/{l}"
def ipset_entry(allow_cap=True):
    x = R.random()
    if x < 0.40: return pick_ip()
    if x < 0.60: return prefix_of(pick_ip())
    if x < 0.72:
        fam = R.choice([4,6])
        a, b = sorted([ipaddress.ip_address(pick_ip(fam)), ipaddress.ip_address(pick_ip(fam))])
        if R.random() < 0.1: a, b = b, a
        return f"{a}-{b}"
    if x < 0.78: return "*"
    if x < 0.88 and allow_cap: return "cap:" + R.choice(CAPS)
    return R.choice(WEIRD)
PORTS = [0,1,22,53,80,443,1000,8080,65534,65535]
def ports():
    x = R.random()
    if x < (0.5 if PERM else 0.25): return {"First":0,"Last":65535}
    if x < 0.5:
        p = R.choice(PORTS); return {"First":p,"Last":p}
    if x < 0.6: return {"First":R.choice(PORTS)}
    if x < 0.65: return {}
    a, b = R.choice(PORTS), R.choice(PORTS)
    if R.random() < 0.8: a, b = min(a,b), max(a,b)
    return {"First":a,"Last":b}
PROTOS = [0,1,2,4,6,17,41,44,47,58,99,132,255,-1,256,6,17,1,58]
def rule():
    r = {}
    if R.random() < 0.95:
        r["SrcIPs"] = [ipset_entry() for _ in range(R.choice([0,1,1,2,3,4,7,8,10]))]
    if R.random() < 0.9:
        dp = []
        for _ in range(R.choice([0,1,1,2,3,5,7,8])):
            d = {"IP": ipset_entry(allow_cap=R.random()<0.05)}
            if R.random() < 0.97: d["Ports"] = ports()
            if R.random() < 0.003: d["Bits"] = 32
            dp.append(d)
        r["DstPorts"] = dp
    x = R.random()
    if PERM and x < 0.5: x = 0
    if x < 0.3: pass
    elif x < 0.4: r["IPProto"] = []
    else: r["IPProto"] = R.sample(PROTOS, R.choice([1,1,2,3,4]))
    if R.random() < 0.2:
        gs = []
        for _ in range(R.choice([1,2])):
            g = {"Dsts": [prefix_of(pick_ip()) if R.random()<0.5 else (pick_ip()+("/32" if ":" not in pick_ip() else "")) for _ in range(R.choice([0,1,2]))]}
            # ensure Dsts valid prefixes for Go json (netip.Prefix unmarshal)
            g["Dsts"] = [str(ipaddress.ip_network(d, strict=False)) if "/" in d else (d + ("/32" if ":" not in d else "/128")) for d in g["Dsts"]]
            if R.random() < 0.6: g["Caps"] = R.sample(["x","y","z"], R.choice([1,2]))
            if R.random() < 0.6:
                g["CapMap"] = {k: [R.choice([1, "s", {"k": [1,2]}, True, None, [], {}])] for k in R.sample(["x","y","w"], R.choice([1,2]))}
            gs.append(g)
        r["CapGrant"] = gs
    if R.random() < 0.002: r["SrcBits"] = [32]
    return r
TCPFLAGS = [0x02,0x12,0x10,0x03,0x06,0x00,0x22,0xff,0x01,0x42,0x82,0x04]
ICMP4 = [(8,0),(8,1),(0,0),(0,1),(3,0),(3,3),(11,0),(12,0),(5,0),(13,0),(4,0),(18,0),(18,5)]
ICMP6 = [(128,0),(128,1),(129,0),(129,1),(1,0),(2,0),(3,0),(4,0),(133,0),(135,0),(136,0),(5,0)]
FPROTOS = [6]*12+[17]*8+[1]*5+[58]*5+[132]*2+[99,47,2,0,255,41,4,50,44,103]
def pts(entry):
    try:
        if entry == "*": return [pick_ip(4), pick_ip(6)]
        if "/" in entry:
            n = ipaddress.ip_network(entry, strict=False); lo, hi = int(n.network_address), int(n.broadcast_address); ver = n.version
        elif "-" in entry:
            a, b = entry.split("-"); a, b = ipaddress.ip_address(a), ipaddress.ip_address(b); lo, hi, ver = int(a), int(b), a.version
            if a.version != b.version: return []
            if lo > hi: lo, hi = hi, lo
        else:
            a = ipaddress.ip_address(entry.split("%")[0].strip()); lo = hi = int(a); ver = a.version
    except Exception:
        return []
    mx = (1 << (32 if ver == 4 else 128)) - 1
    return [str(ipaddress.IPv4Address(x) if ver == 4 else ipaddress.IPv6Address(x)) for x in {lo, hi, max(lo-1,0), min(hi+1,mx), R.randint(lo,hi)}]
SP, DP, PP = [], [], []
def flow(local):
    fam = R.choice([4,6])
    dst = R.choice([a for a in local if (":" in a) == (fam==6)] or [pick_ip(fam)]) if R.random()<0.6 else pick_ip(fam)
    src = pick_ip(fam)
    if R.random() < (0.95 if PERM else 0.6):
        c = [x for x in SP if (":" in x) == (fam == 6)]
        if c: src = R.choice(c)
        c = [x for x in DP if (":" in x) == (fam == 6)]
        if PERM: c = [x for x in c if x in local] or c
        if c and R.random() < (0.9 if PERM else 0.5): dst = R.choice(c)
    p = R.choice(FPROTOS)
    # IPv6 next header 44 is the fragment header to the client's decoder, which reads the
    # bytes after it as one (matcher/INTERNALS.md): not a flow of protocol 44.
    if p == 44 and (fam == 6 or R.random() < 0.8): p = 6
    f = {"src":src,"dst":dst,"proto":p,"sport":R.choice([0,1000,5353,40000]),"dport":R.choice(PORTS+[R.randrange(65536)]+PP),"pkt":"first"}
    if p == 6 and R.random() < 0.35:
        f["pkt"]="tcp"; f["flags"]=R.choice(TCPFLAGS)
    if p in (1,58) and R.random() < 0.5:
        f["pkt"]="icmp"; t,c = R.choice(ICMP4 if (p==1) else ICMP6)
        if R.random()<0.2: t,c = R.choice(ICMP4+ICMP6)
        f["itype"]=t; f["icode"]=c
    return f
ROUTES = ["10.0.0.0/24","2001:db8::/64","0.0.0.0/0","::/0","::ffff:0:0/96","169.254.0.0/16","224.0.0.0/4","100.64.0.0/10","fd7a:115c:a1e0::/48","ff00::/8","fe80::/10"]

def random_cases(ncases, seed):
    global PERM
    for i in range(ncases):
        # Every other case permissive: wide ports, no protocol lists, flows at what the rules name.
        PERM = i % 2 == 1
        nr = R.choice([1,1,2,2,3,4,5,6,8,12])
        rules = [rule() for _ in range(nr)]
        text = json.dumps(rules)
        SP[:] = [x for r in rules for e in r.get("SrcIPs", []) for x in pts(e)]
        DP[:] = [x for r in rules for e in r.get("DstPorts", []) for x in pts(e["IP"])]
        PP[:] = [x for r in rules for e in r.get("DstPorts", []) for p in [e.get("Ports", {})] for x in (p.get("First",0), p.get("Last",0), p.get("First",0)-1, p.get("Last",0)+1) if 0 <= x <= 65535]
        local = R.sample(V4, R.choice([1,2,3])) + R.sample(V6, R.choice([1,2,3]))
        if DP and R.random() < 0.7: local += R.sample(DP, min(len(DP), R.choice([1,2,3]) * (4 if PERM else 1)))
        routes = R.sample(ROUTES, R.choice([0,0,0,1,2]))
        caps = [[pick_ip(), R.choice(CAPS)] for _ in range(R.choice([0,0,2,5,10]))]
        flows = [flow(local) for _ in range(40)]
        # caps: make sure some flow sources hold caps
        for f in R.sample(flows, 5):
            if R.random()<0.5: caps.append([f["src"], R.choice(CAPS)])
        out = []
        for f in flows:
            if f["proto"] in (17,132) and R.random() < 0.3:
                out.append({"src":f["dst"],"dst":f["src"],"proto":f["proto"],"sport":f["dport"],"dport":f["sport"],"pkt":"first"})
        if R.random() < 0.05:
            # LRU pressure
            extra = [{"src":"100.64.0.1","dst":"100.64.0.2","proto":17,"sport":R.randrange(65536),"dport":53} for _ in range(R.choice([400,511,512,600]))]
            k = R.randrange(len(out)+1); out = out[:k] + extra + out[k:]
        capq = [[pick_ip(), pick_ip()] for _ in range(6)]
        emit({"id":f"r{seed}-{i}","filter":text,"addrs":local,"routes":routes,"caps":caps,"out":out,"flows":flows,"capq":capq})


# --- hand-made shapes: every odd address form in each field, JSON oddities -------------------

def shape_cases():
    FL = []
    for s in ["100.64.0.1","100.64.0.2","fd7a:115c:a1e0::1","fe80::1","::ffff:100.64.0.1","10.0.0.1","10.0.0.5"]:
        for d in ["100.64.1.1","fd7a:115c:a1e0::101"]:
            if (":" in s) == (":" in d):
                FL.append({"src":s,"dst":d,"proto":6,"dport":443,"pkt":"first"})
                FL.append({"src":s,"dst":d,"proto":17,"dport":443,"pkt":"first"})
                FL.append({"src":s,"dst":d,"proto":1 if ":" not in s else 58,"dport":0,"pkt":"first"})
                FL.append({"src":s,"dst":d,"proto":47,"dport":0,"pkt":"first"})
    CAPS = [["100.64.0.1","a"],["fd7a:115c:a1e0::1","a"],["100.64.0.2",""]]
    def add(name, text):
        emit({"id":name,"filter":text,"addrs":["100.64.1.1","fd7a:115c:a1e0::101"],"routes":[],"caps":CAPS,"out":[],"flows":FL,
                      "capq":[["100.64.0.1","100.64.1.1"],["fd7a:115c:a1e0::1","fd7a:115c:a1e0::101"]]})
    WEIRD = ["fe80::1%eth0","fd7a:115c:a1e0::1%1","fd7a:115c:a1e0::1%","100.64.0.1 "," 100.64.0.1","100.064.0.1","10.0.0.0/024","10.0.0.0/+24","FD7A:115C:A1E0::1","::FFFF:100.64.0.1",
     "fe80::1%eth0/64","fe80::%eth0-fe80::2","fd7a:115c:a1e0::%x-fd7a:115c:a1e0::9","100.64.0.1-100.64.0.1","100.64.0.1--100.64.0.2","100.64.0.5-100.64.0.1","100.64.0.1-fd7a:115c:a1e0::1",
     "", "1.2.3.4/33","10.0.0.1/24","fd7a:115c:a1e0::100.64.0.1","Cap:a","CAP:a","cap:","cap:a:b","cap: a","*/0","**","* ","::ffff:100.64.0.0/120",
     "::ffff:100.64.0.1-::ffff:100.64.0.9","1.2.3","100.64.0.1/","/24","0x64.64.0.1","100.64.0.1\u0000","\uff11\uff10\uff10.64.0.1","10.0.0.0/8-10.0.0.1",
     "100.64.0.0/10","100.64.0.0/010","fd7a:115c:a1e0::/48","::ffff:6440:1","0:0:0:0:0:ffff:100.64.0.1","fd7a:115c:a1e0:0:0:0:0:1","fd7a:115c:a1e0::0001","fd7a:115c:a1e0::00001",
     "100.64.0.1/32/","100.64.0.0-100.64.0.255/24","fd7a:115c:a1e0::1/128%1","::ffff:100.64.0.1/96","1.2.3.4/32 ","100.64.0.1\t","::1.2.3.4","100.64.0.1%eth0",
     "FE80::1%ETH0","fd7a:115c:a1e0::1%25eth0","fe80::1%%","fd7a:115c:a1e0::1%1-fd7a:115c:a1e0::3","100.64.0.1-100.64.0.9%1"]
    for i, w in enumerate(WEIRD):
        add(f"src-{i}:{w}", json.dumps([{"SrcIPs":[w],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]))
        add(f"dst-{i}:{w}", json.dumps([{"SrcIPs":["*"],"DstPorts":[{"IP":w,"Ports":{"First":0,"Last":65535}}]}]))
        add(f"grant-{i}:{w}", json.dumps([{"SrcIPs":["*"],"CapGrant":[{"Dsts":[w],"Caps":["x"]}]}]))
    SH = {
     "null": 'null', "empty": '[]', "obj": '{}', "nullrule": '[null]', "nullsrc": '[{"SrcIPs":null,"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "nullentry": '[{"SrcIPs":[null,"*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "lower": '[{"srcips":["*"],"dstports":[{"ip":"*","ports":{"first":0,"last":65535}}],"ipproto":[6]}]',
     "dupkey": '[{"SrcIPs":["10.0.0.1"],"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "dupkeycase": '[{"SrcIPs":["10.0.0.1"],"srcips":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "dupports": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535},"Ports":{"First":443,"Last":443}}]}]',
     "dupproto": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[6],"IPProto":[17]}]',
     "protofloat": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[6.0]}]',
     "protoexp": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[1e1]}]',
     "protobig": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[6, 99999999999999999999]}]',
     "protoneg": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[-6, 262]}]',
     "protostr": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":["6"]}]',
     "protonull": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[null, 17]}]',
     "port70000": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":70000}}]}]',
     "portneg": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":-1,"Last":443}}]}]',
     "portfloat": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":443.0}}]}]',
     "portnull": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":null}]}]',
     "portsnullfield": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":null,"Last":443}}]}]',
     "ipnull": '[{"SrcIPs":["*"],"DstPorts":[{"IP":null,"Ports":{"First":0,"Last":65535}}]}]',
     "ipnum": '[{"SrcIPs":["*"],"DstPorts":[{"IP":5,"Ports":{"First":0,"Last":65535}}]}]',
     "bitsnull": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Bits":null,"Ports":{"First":0,"Last":65535}}]}]',
     "bits": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Bits":32,"Ports":{"First":0,"Last":65535}}]}]',
     "srcbitsempty": '[{"SrcIPs":["*"],"SrcBits":[],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "srcbitsnull": '[{"SrcIPs":["*"],"SrcBits":null,"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "srcbits": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]},{"SrcIPs":["*"],"SrcBits":[32]}]',
     "unknownfield": '[{"SrcIPs":["*"],"Foo":{"a":[1,2]},"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535},"X":1}]}]',
     "escape": '[{"SrcIPs":["\\u0031\\u0030\\u0030.64.0.1"],"DstPorts":[{"IP":"\\u002a","Ports":{"First":0,"Last":65535}}]}]',
     "surrogate": '[{"SrcIPs":["\\ud800","*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "keyescape": '[{"Src\\u0049Ps":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "kelvin": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[6],"\u212aey":1}]',
     "longs": '[{"ſrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "grantbad": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"CapGrant":[{"Dsts":["10.0.0.1/24"],"Caps":["x"]}]}]',
     "grantnull": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32"],"CapMap":{"x":null,"y":[]}}]}]',
     "grantnullval": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32"],"CapMap":{"x":[null]}}]}]',
     "grantnonlist": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32"],"CapMap":{"x":5}}]}]',
     "grantemptycap": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32"],"Caps":[""],"CapMap":{"":[1]}}]}]',
     "grantdup": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32","100.64.0.0/10"],"Caps":["x"],"CapMap":{"x":[1],"y":[2]}},{"Dsts":["100.64.1.1/32"],"CapMap":{"x":[3]}}]}]',
     "grantzone": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["fe80::1%eth0/128"],"Caps":["x"]}]}]',
     "grant4in6": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["::ffff:100.64.1.1/128"],"Caps":["x"]}]}]',
     "grantcapsnull": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32"],"Caps":null,"CapMap":null}]}]',
     "grantbigvals": '[{"SrcIPs":["*"],"CapGrant":[{"Dsts":["100.64.1.1/32"],"CapMap":{"x":[1.0, 1e2, 12345678901234567890, "\\u00e9", {"b":1,"a":2}]}}]}]',
     "capnocap": '[{"SrcIPs":["cap:a"],"DstPorts":[{"IP":"100.64.1.1","Ports":{"First":443,"Last":443}}],"IPProto":[6,47]}]',
     "capempty": '[{"SrcIPs":["cap:"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
     "trailing": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}] x',
     "trailingws": '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]  \n',
     "bom": '\ufeff[]',
     "deep": '[{"SrcIPs":["*"],"X":' + '['*600 + ']'*600 + '}]',
     "protoempty_cap": '[{"SrcIPs":["cap:a"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[]}]',
     "dstsOnly4capicmp6": '[{"SrcIPs":["cap:a"],"DstPorts":[{"IP":"100.64.1.1","Ports":{"First":22,"Last":22}}]}]',
    }
    for k, v in SH.items(): add("shape-" + k, v)



# --- the filters aclc compiles for the repository's examples and captured cases -------------

def compile_all(aclc):
    """(case id, `aclc compile --format json` output) for each case aclc accepts."""
    jobs = [("examples", os.path.join(ROOT, "testdata/examples/policy.hujson"),
             os.path.join(ROOT, "testdata/examples/inventory.json"))]
    tmp = tempfile.mkdtemp(prefix="filter-diff-")
    for path in sorted(glob.glob(os.path.join(ROOT, "testdata/captures/cases/*/*.json"))):
        case = json.load(open(path))
        inv = dict(case["topology"]); inv["tailnet"] = case.get("tailnet") or {}
        d = os.path.join(tmp, case["id"]); os.makedirs(d, exist_ok=True)
        pol = os.path.join(d, "policy" + (".hujson" if case["policy"]["format"] == "hujson" else ".json"))
        open(pol, "w").write(case["policy"]["text"])
        json.dump(inv, open(os.path.join(d, "inventory.json"), "w"))
        jobs.append((case["id"], pol, os.path.join(d, "inventory.json")))
    out = []
    for cid, pol, inv in jobs:
        run = subprocess.run([aclc, "compile", pol, "--inventory", inv, "--format", "json"],
                             capture_output=True, timeout=300)
        if run.returncode == 0:
            out.append((cid, json.loads(run.stdout)))
    if len(out) < 100:
        sys.exit(f"gen.py: only {len(out)} of {len(jobs)} cases compiled")
    return out

def points(entry):
    out = []
    try:
        if entry == "*": return ["100.64.0.7", "fd7a:115c:a1e0::7", "8.8.8.8", "2001:4860::1"]
        if entry.startswith("cap:"): return []
        if "/" in entry:
            n = ipaddress.ip_network(entry, strict=False); lo, hi = int(n.network_address), int(n.broadcast_address); ver = n.version
        elif "-" in entry:
            a, b = entry.split("-"); a, b = ipaddress.ip_address(a), ipaddress.ip_address(b); lo, hi, ver = int(a), int(b), a.version
        else:
            a = ipaddress.ip_address(entry); lo = hi = int(a); ver = a.version
    except Exception:
        return []
    mx = (1 << (32 if ver == 4 else 128)) - 1
    for x in {lo, hi, (lo + hi) // 2, max(lo - 1, 0), min(hi + 1, mx), R.randint(lo, hi)}:
        out.append(str(ipaddress.ip_address(x) if ver == 6 else ipaddress.IPv4Address(x)))
    return out
CPROTOS = [6,6,6,17,17,1,58,132,47,99,2,41]
def compiled_cases(compiled, NF):
    n = 0
    for cid, d in compiled:
        for name, node in sorted(d["nodes"].items()):
            rules = node["packet_filter_rules"]
            if not rules: continue
            addrs = [a.split("/")[0] for a in node["addresses"]]
            routes = [r for r in node.get("allowed_ips", []) if r.split("/")[0] not in addrs or not (r.endswith("/32") or r.endswith("/128"))]
            srcs, dsts, ports, protos, capnames = set(), set(addrs), {0, 22, 80, 443, 65535}, set(CPROTOS), set()
            for r in rules:
                for s in r.get("SrcIPs") or []:
                    if s.startswith("cap:"): capnames.add(s[4:])
                    srcs.update(points(s))
                for dp in r.get("DstPorts") or []:
                    dsts.update(points(dp["IP"]))
                    p = dp.get("Ports", {}); a, b = p.get("First", 0), p.get("Last", 0)
                    ports.update(x for x in (a, b, a - 1, b + 1, (a + b) // 2) if 0 <= x <= 65535)
                protos.update(x for x in (r.get("IPProto") or []) if 0 <= x <= 255)
                for g in r.get("CapGrant") or []:
                    for ds in g.get("Dsts") or []: dsts.update(points(ds))
            for rt in routes: dsts.update(points(rt))
            for p in node.get("peers", {}).values():
                for a in p.get("allowed_ips", []): srcs.update(points(a))
            srcs4 = sorted(s for s in srcs if ":" not in s); srcs6 = sorted(s for s in srcs if ":" in s)
            dsts4 = sorted(s for s in dsts if ":" not in s); dsts6 = sorted(s for s in dsts if ":" in s)
            ports = sorted(ports); protos = sorted(protos)
            flows = []
            for _ in range(NF):
                fam = 4 if (R.random() < 0.5 and srcs4 and dsts4) or not (srcs6 and dsts6) else 6
                if fam == 4 and not (srcs4 and dsts4): break
                src = R.choice(srcs4 if fam == 4 else srcs6); dst = R.choice(dsts4 if fam == 4 else dsts6)
                p = R.choice(protos)
                if p in (0, 255, 44): p = 6
                fl = {"src": src, "dst": dst, "proto": p, "sport": R.choice([1000, 53]), "dport": R.choice(ports), "pkt": "first"}
                if p == 6 and R.random() < 0.1: fl["pkt"] = "tcp"; fl["flags"] = R.choice([0x12, 0x10, 0x02, 0x04])
                if p in (1, 58) and R.random() < 0.2:
                    fl["pkt"] = "icmp"; fl["itype"], fl["icode"] = R.choice([(8,0),(0,0),(3,1),(128,0),(129,0),(1,0),(135,0)])
                flows.append(fl)
            if not flows: continue
            allsrc = srcs4 + srcs6
            caps = [[R.choice(allsrc), c] for c in capnames for _ in range(3)] if allsrc else []
            capq = [[R.choice(allsrc), R.choice(dsts4 + dsts6)] for _ in range(5)] if allsrc else []
            emit({"id": cid + "/" + name, "filter": json.dumps(rules), "addrs": addrs, "routes": routes, "caps": caps, "out": [], "flows": flows, "capq": capq})
            n += 1




if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "random" and len(sys.argv) == 4:
        R.seed(int(sys.argv[2]))
        random_cases(int(sys.argv[3]), int(sys.argv[2]))
    elif mode == "shapes" and len(sys.argv) == 2:
        shape_cases()
    elif mode == "compiled" and len(sys.argv) in (5, 6):
        R.seed(int(sys.argv[2]))
        compiled = compile_all(sys.argv[4])
        if len(sys.argv) == 6:
            os.makedirs(sys.argv[5], exist_ok=True)
            for i, (cid, doc) in enumerate(compiled):
                with open(os.path.join(sys.argv[5], f"{i:04d}.json"), "w") as out:
                    json.dump(doc, out)
        compiled_cases(compiled, int(sys.argv[3]))
    else:
        sys.exit(__doc__)
