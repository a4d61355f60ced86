// Persistent javac for rewardranker: one request per line on stdin (javac arguments separated by TAB), one
// answer per line on stdout: "<exit code>\t<diagnostics with \ and newlines escaped>". Runs inside the sandbox.
import java.io.*;
import javax.tools.*;

public class JavaCompileServer {
    public static void main(String[] argv) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        String line;
        while ((line = in.readLine()) != null) {
            ByteArrayOutputStream diag = new ByteArrayOutputStream();
            int rc;
            try {
                rc = javac.run(null, diag, diag, line.split("\t"));
            } catch (Throwable t) {
                t.printStackTrace(new PrintStream(diag, true, "UTF-8"));
                rc = 4;  // javac's "abnormal termination"
            }
            String text = diag.toString("UTF-8");
            if (text.length() > 4096) text = text.substring(0, 4096);
            out.println(rc + "\t" + text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", ""));
        }
    }
}
