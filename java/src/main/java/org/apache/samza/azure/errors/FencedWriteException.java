package org.apache.samza.azure.errors;

/**
 * A newer owner holds what this processor wrote to, such as a task's checkpoints after a rebalance;
 * storage refused the write and nothing of it was applied.
 */
public class FencedWriteException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "FENCED";

  public FencedWriteException(String message) {
    super(CODE, message);
  }
}
