// Persistent mcs for rewardranker: one request per line on stdin (mcs arguments separated by TAB), one answer
// per line on stdout: "<exit code>\t<diagnostics with \ and newlines escaped>". Runs inside the sandbox.
using System;
using System.IO;

class CsCompileServer {
    static void Main() {
        string line;
        while ((line = Console.In.ReadLine()) != null) {
            var diag = new StringWriter();
            bool ok;
            try {
                ok = Mono.CSharp.CompilerCallableEntryPoint.InvokeCompiler(line.Split('\t'), diag);
            } catch (Exception e) {
                diag.WriteLine(e.ToString());
                ok = false;
            }
            string text = diag.ToString();
            if (text.Length > 4096) text = text.Substring(0, 4096);
            Console.Out.WriteLine((ok ? "0" : "1") + "\t" + text.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\r", ""));
            Console.Out.Flush();
        }
    }
}
