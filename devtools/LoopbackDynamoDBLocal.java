// Starts AWS's DynamoDB Local bound to 127.0.0.1 (its own command line binds every interface).
//
// Run by devtools/dynamodb_local.py with Java's source launcher (no build step):
//   java -cp 'DynamoDBLocal.jar:DynamoDBLocal_lib/*' LoopbackDynamoDBLocal.java <port> [DynamoDB Local options]
// Port 0 takes any free port. Prints "LISTENING <port>" once it serves, and exits when its
// standard input closes, so it never outlives the process that started it.

import java.lang.reflect.Field;
import java.util.Arrays;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String[] options = Arrays.copyOfRange(args, 1, args.length);
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(options);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost("127.0.0.1");
            ((ServerConnector) connector).setPort(port);
        }
        try {
            proxy.start();
        } catch (Exception error) {
            System.out.println("FAILED " + error);
            System.exit(3);
        }
        for (Connector connector : server.getConnectors()) {
            System.out.println("LISTENING " + ((ServerConnector) connector).getLocalPort());
        }
        System.out.flush();
        while (System.in.read() != -1) {
            // the parent holds the pipe open while it wants this server
        }
        proxy.stop();
        System.exit(0);
    }
}
